//! Telling "the base lacks a compiler or a tool" apart from other build failures, from the
//! build's output.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

static COMPILER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?m)(?:(?:command|execute)\s+'|no such file or directory:\s*'|\b)((?:[\w.+/-]*[/-])?(?:gcc|cc|clang|g\+\+|c\+\+))(?:'\s*(?:failed|:)|:\s*(?:command\s+)?not found|'\s*$)"#,
    )
    .expect("valid regex")
});
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"fatal error: ([\w/.+-]+\.h): no such file or directory").expect("valid regex")
});
static FAILED_CMD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"error: command '([^']+)' failed").expect("valid regex"));

/// What a failed build needed that its environment lacks, if the output says so.
pub fn missing_tool(output: &str, source_dir: Option<&Path>) -> Option<String> {
    let lower = output.to_lowercase();
    if lower.contains("python.h: no such file") {
        return Some("the Python C headers (Python.h), i.e. a base image with the python3-dev files and a C compiler".into());
    }
    if let Some(c) = COMPILER.captures(&lower) {
        let tool = c.get(1).map(|m| m.as_str()).unwrap_or("cc");
        let kind = if tool.ends_with("++") { "C++" } else { "C" };
        return Some(format!("a {kind} compiler ({tool} is not available)"));
    }
    if lower.contains("can't find rust compiler")
        || lower.contains("cargo: not found")
        || lower.contains("rustc: not found")
        || lower.contains("no such file or directory: 'cargo'")
        || lower.contains("cargo, the rust package manager, is not installed")
    {
        return Some("a Rust toolchain (cargo and rustc)".into());
    }
    if let Some(c) = HEADER.captures(&lower) {
        return Some(format!(
            "the C header {} (a -dev package of the library) and a C compiler",
            &c[1]
        ));
    }
    for tool in ["cmake", "ninja", "meson", "pkg-config", "swig", "gfortran"] {
        if lower.contains(&format!("{tool}: not found"))
            || lower.contains(&format!("no such file or directory: '{tool}'"))
            || lower.contains(&format!("could not find {tool}"))
        {
            return Some(format!("the build tool {tool}"));
        }
    }
    if let Some(c) = FAILED_CMD.captures(&lower) {
        return Some(format!("the command {} (it failed)", &c[1]));
    }
    if lower.contains("building '") && lower.contains("extension") {
        return Some("a C compiler (it builds a C extension)".into());
    }
    if let Some(dir) = source_dir
        && let Ok(setup) = std::fs::read_to_string(dir.join("setup.py"))
        && (setup.contains("ext_modules") || setup.contains("Extension("))
    {
        return Some("a C compiler (setup.py declares C extensions)".into());
    }
    None
}

/// The last `n` lines of `output`.
pub fn tail(output: &str, n: usize) -> String {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_missing_compilers_and_tools() {
        let cases = [
            (
                "error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory",
                "C compiler (x86_64-linux-gnu-gcc",
            ),
            (
                "unable to execute 'gcc': No such file or directory",
                "C compiler (gcc",
            ),
            ("/bin/sh: 1: cc: not found", "C compiler (cc"),
            (
                "FileNotFoundError: [Errno 2] No such file or directory: 'g++'",
                "C++ compiler (g++",
            ),
            (
                "src/x.c:1:10: fatal error: Python.h: No such file or directory",
                "Python C headers",
            ),
            ("error: can't find Rust compiler", "Rust toolchain"),
            (
                "x.c:2:10: fatal error: ffi.h: No such file or directory",
                "C header ffi.h",
            ),
            (
                "error: command '/usr/bin/cmake' failed with exit code 1",
                "the command /usr/bin/cmake",
            ),
        ];
        for (out, want) in cases {
            let got = missing_tool(out, None).unwrap_or_default();
            assert!(got.contains(want), "{out:?} gave {got:?}");
        }
        assert_eq!(
            missing_tool("SyntaxError: invalid syntax\nerror in setup.py", None),
            None
        );
        assert_eq!(
            missing_tool("ModuleNotFoundError: No module named 'occ'", None),
            None
        );
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
