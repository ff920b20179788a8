//! Safe context defaults for Python projects.
//!
//! When a context has neither `.dockerignore` nor `.containerignore`, rbuild does not copy
//! everything: it applies [`DEFAULT_IGNORES`] (version control, virtualenvs, caches, bytecode,
//! build outputs, `node_modules`, `.env*`) plus the patterns of the project's top-level
//! `.gitignore`, and says in one line what was left out. With an ignore file of the project's
//! own, that file alone decides, and rbuild warns about files that look like secrets (`.env*`,
//! private keys, `*.pem`, credentials files) that are about to be copied.
//!
//! `.gitignore` lines are read with gitignore's rules and turned into `.dockerignore` patterns:
//! a pattern without a `/` (other than a trailing one) matches at any depth (`*.log` →
//! `**/*.log`), one with a `/` is anchored at the context root, `!` re-includes.
//!
//! ```
//! let p = rbuild_layer::gitignore_to_dockerignore("*.log\n/build/\ndocs/*.tmp\n!keep.log\n# c\n");
//! assert_eq!(p, ["**/*.log", "build", "docs/*.tmp", "!**/keep.log"]);
//! ```

use std::path::Path;

use crate::context::{Context, WalkWarning, walk_context};
use crate::dockerignore::IgnoreFile;
use crate::error::Result;

/// rbuild's built-in ignore list (`.dockerignore` syntax), used when the context has no ignore
/// file of its own.
pub const DEFAULT_IGNORES: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".jj",
    "**/.venv",
    "**/.tox",
    "**/.nox",
    "**/__pycache__",
    "**/*.pyc",
    "**/*.pyo",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.ipynb_checkpoints",
    "**/*.egg-info",
    "build",
    "dist",
    ".coverage",
    "htmlcov",
    "**/node_modules",
    "**/.env",
    "**/.env.*",
    "**/.DS_Store",
    ".idea",
    ".vscode",
];

/// Turns the text of a `.gitignore` into `.dockerignore` patterns (see the module docs).
pub fn gitignore_to_dockerignore(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (neg, rest) = match line.strip_prefix('!') {
            Some(r) => ("!", r),
            None => ("", line),
        };
        let rest = rest.trim_end();
        let body = rest.trim_end_matches('/');
        if body.is_empty() {
            continue;
        }
        let anchored = body.starts_with('/') || body.contains('/');
        let body = body.trim_start_matches('/');
        if anchored || body.starts_with("**/") {
            out.push(format!("{neg}{body}"));
        } else {
            out.push(format!("{neg}**/{body}"));
        }
    }
    out
}

/// True for a file name that looks like it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == ".env"
        || (lower.starts_with(".env.")
            && !lower.ends_with(".example")
            && !lower.ends_with(".sample"))
        || lower.ends_with(".pem")
        || lower.ends_with(".key")
        || lower.ends_with(".p12")
        || lower.ends_with(".pfx")
        || matches!(
            lower.as_str(),
            "id_rsa"
                | "id_dsa"
                | "id_ecdsa"
                | "id_ed25519"
                | ".netrc"
                | ".pypirc"
                | ".npmrc"
                | "credentials"
                | "credentials.json"
                | ".git-credentials"
                | "secrets.json"
                | "secrets.yaml"
                | "secrets.yml"
                | "service-account.json"
        )
}

/// Loads the context like [`crate::load_context`], but without an ignore file of the project's
/// own applies [`DEFAULT_IGNORES`] and the top-level `.gitignore` (when `defaults` is true), and
/// reports what they left out ([`WalkWarning::DefaultIgnores`]); with an ignore file, reports
/// files that look like secrets being copied ([`WalkWarning::SecretsCopied`]).
pub fn load_context_with_defaults(dir: &Path, defaults: bool) -> Result<Context> {
    if !defaults || IgnoreFile::load(dir)?.is_some() {
        let mut ctx = crate::load_context(dir)?;
        let secrets: Vec<String> = ctx
            .entries
            .iter()
            .filter(|e| matches!(e.kind, crate::EntryKind::File { .. }))
            .filter(|e| looks_secret(e.path.rsplit('/').next().unwrap_or(&e.path)))
            .map(|e| e.path.clone())
            .collect();
        if !secrets.is_empty() {
            ctx.warnings
                .push(WalkWarning::SecretsCopied { paths: secrets });
        }
        return Ok(ctx);
    }
    let gitignore = match std::fs::read_to_string(dir.join(".gitignore")) {
        Ok(t) => gitignore_to_dockerignore(&t),
        Err(_) => Vec::new(),
    };
    let mut patterns: Vec<&str> = DEFAULT_IGNORES.to_vec();
    patterns.extend(gitignore.iter().map(String::as_str));
    // A .gitignore line that does not parse as a .dockerignore pattern falls back to the
    // built-in list alone rather than failing the build.
    let ignore = IgnoreFile::from_patterns("rbuild's default ignore list and .gitignore", patterns)
        .or_else(|_| {
            IgnoreFile::from_patterns(
                "rbuild's default ignore list",
                DEFAULT_IGNORES.iter().copied(),
            )
        })?;
    let mut ctx = walk_context(dir, Some(&ignore))?;
    let left_out = left_out(dir, &ignore);
    if !left_out.is_empty() {
        ctx.warnings.push(WalkWarning::DefaultIgnores {
            left_out,
            gitignore: !gitignore.is_empty(),
        });
    }
    Ok(ctx)
}

/// The topmost excluded paths of `dir` (an excluded directory is one entry), sorted.
fn left_out(dir: &Path, ignore: &IgnoreFile) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&abs) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if ignore.matches(&path) {
                out.push(path);
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), path));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_uv_project_copies_no_git_venv_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "main.py",
            "pyproject.toml",
            "uv.lock",
            ".env",
            ".git/HEAD",
            ".venv/bin/python",
            "pkg/__pycache__/a.cpython-312.pyc",
            "pkg/a.py",
            "logs/x.log",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), "x").unwrap();
        }
        std::fs::write(d.join(".gitignore"), "*.log\n").unwrap();
        let ctx = load_context_with_defaults(d, true).unwrap();
        let paths: Vec<&str> = ctx.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".gitignore",
                "logs",
                "main.py",
                "pkg",
                "pkg/a.py",
                "pyproject.toml",
                "uv.lock"
            ]
        );
        let note = ctx
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            note.contains(".env, .git, .venv, logs/x.log, pkg/__pycache__"),
            "{note}"
        );
        assert!(note.contains("--no-default-ignores"), "{note}");
        // Turned off: everything, as before.
        let all = load_context_with_defaults(d, false).unwrap();
        assert!(all.entries.iter().any(|e| e.path == ".venv/bin/python"));
        assert!(
            all.warnings
                .iter()
                .any(|w| matches!(w, WalkWarning::SecretsCopied { paths } if paths == &[".env"]))
        );
    }

    #[test]
    fn with_an_ignore_file_secrets_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(".dockerignore"), "*.md\n").unwrap();
        std::fs::write(d.join(".env.production"), "SECRET_KEY=x").unwrap();
        std::fs::write(d.join("server.pem"), "x").unwrap();
        std::fs::write(d.join(".env.example"), "SECRET_KEY=").unwrap();
        std::fs::write(d.join("app.py"), "x").unwrap();
        let ctx = load_context_with_defaults(d, true).unwrap();
        let w: Vec<String> = ctx.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains(".env.production, server.pem"), "{w:?}");
        assert!(!w[0].contains(".env.example"), "{w:?}");
    }

    #[test]
    fn gitignore_lines() {
        assert_eq!(
            gitignore_to_dockerignore("/x\n**/y\n\n#c\nz/\n"),
            ["x", "**/y", "**/z"]
        );
    }
}
