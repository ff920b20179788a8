//! Which third-party modules does a project's source import?
//!
//! Used to warn when a project has no lockfile but imports packages that are not in the base image
//! ("the project imports fastapi, uvicorn but has no lockfile"). It reads Python source as text; it
//! never runs it.
//!
//! # What counts as an import
//!
//! [`scan_imports`] finds `import a.b`, `import a, b as c`, `from a.b import x` and
//! `from a import (x,\n y)` statements anywhere in a file (also inside functions, `try:` blocks and
//! after `;` or a one-line `if …:`/`try:` header), and gives the first component of each module
//! name. Relative imports (`from . import x`, `from .mod import y`) are local and skipped. Text
//! inside comments and string literals (including triple-quoted docstrings) is never read as an
//! import; brackets and backslashes join physical lines as Python's tokenizer does. `__import__`
//! and `importlib.import_module` calls are not followed.
//!
//! # Third-party
//!
//! [`third_party_imports`] keeps the names that are neither in the standard library of any CPython
//! from 3.8 to 3.14 ([`is_stdlib`]) nor local to the project. A name is local to a file when a
//! module (`name.py`, an extension `name.*.so`) or a directory `name/` sits in a directory that can
//! be on `sys.path` when the file runs: the context root, `src/` (the src layout), or any directory
//! above the file that is not itself a package (has no `__init__.py`); a package directory is
//! never a `sys.path` entry, so `proj/celery.py` does not hide the real `celery` from
//! `proj/settings.py`. Files below `site-packages`, `dist-packages`, `node_modules`,
//! `__pycache__`, hidden directories (`.venv`, `.git`, `.tox`) and virtual environments (a directory
//! holding `pyvenv.cfg`) are neither scanned nor local.
//!
//! ```
//! use rbuild_python::imports::third_party_imports;
//! let files: Vec<(&str, Option<&[u8]>)> = vec![
//!     ("app/main.py", Some(b"import os, json\nfrom fastapi import FastAPI\nfrom app.db import x\nfrom .util import y\n".as_slice())),
//!     ("app/db.py", Some(b"import sqlalchemy as sa  # import requests\n\"\"\"\nimport numpy\n\"\"\"\n".as_slice())),
//!     ("requirements.in", None),
//! ];
//! let found = third_party_imports(files);
//! let names: Vec<&str> = found.iter().map(|i| i.module.as_str()).collect();
//! assert_eq!(names, ["fastapi", "sqlalchemy"]);
//! assert_eq!(found[0].first_seen, "app/main.py:2");
//! ```

mod stdlib;

use std::collections::{BTreeMap, BTreeSet};

/// One absolute import statement's top-level module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Import {
    /// The first component of the module name (`a` for `import a.b.c`).
    pub module: String,
    /// The 1-based line where the statement starts.
    pub line: usize,
}

/// A third-party module a project imports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThirdPartyImport {
    /// The top-level module name (`yaml`, `PIL`: a module, not necessarily the distribution's name).
    pub module: String,
    /// Where it is first imported (`path:line`; the first file by path, bytewise).
    pub first_seen: String,
    /// How many files import it.
    pub files: usize,
}

/// Whether `module` (a top-level module name) is part of the standard library of some CPython
/// from 3.8 to 3.14.
pub fn is_stdlib(module: &str) -> bool {
    stdlib::STDLIB.binary_search(&module).is_ok()
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Splits source into statements (logical lines split at `;`), with comments removed and every
/// string literal replaced by `""`. Each comes with its 1-based starting line.
fn statements(src: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 1usize;
    let mut line = 1usize;
    let mut depth = 0usize;
    let mut i = 0usize;
    let mut flush = |cur: &mut String, start: &mut usize, line: usize| {
        if !cur.trim().is_empty() {
            out.push((*start, std::mem::take(cur)));
        }
        cur.clear();
        *start = line;
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                let triple = i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c;
                i += if triple { 3 } else { 1 };
                while i < chars.len() {
                    let d = chars[i];
                    if d == '\\' {
                        if chars.get(i + 1) == Some(&'\n') {
                            line += 1;
                        }
                        i += 2;
                        continue;
                    }
                    if d == '\n' {
                        if !triple {
                            break; // unterminated: the tokenizer would fail; end it here
                        }
                        line += 1;
                    }
                    if d == c
                        && (!triple
                            || (i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c))
                    {
                        i += if triple { 3 } else { 1 };
                        break;
                    }
                    i += 1;
                }
                cur.push_str("\"\"");
                continue;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                cur.push(' ');
                line += 1;
                i += 2;
                continue;
            }
            '\\' if chars.get(i + 1) == Some(&'\r') && chars.get(i + 2) == Some(&'\n') => {
                cur.push(' ');
                line += 1;
                i += 3;
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => {
                line += 1;
                i += 1;
                if depth > 0 {
                    cur.push(' ');
                } else {
                    flush(&mut cur, &mut start, line);
                }
                continue;
            }
            ';' if depth == 0 => {
                i += 1;
                flush(&mut cur, &mut start, line);
                continue;
            }
            _ => {}
        }
        cur.push(c);
        i += 1;
    }
    flush(&mut cur, &mut start, line);
    out
}

/// The keyword a statement starts with, and the rest.
fn keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(kw)?;
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if c == '_' || c.is_alphanumeric() || c == '.' => None,
        Some(_) => Some(rest),
    }
}

/// The body after a one-line compound statement header (`try: import x`, `if a: import b`).
fn after_header(s: &str) -> Option<&str> {
    const HEADERS: [&str; 9] = [
        "if", "elif", "else", "try", "except", "finally", "with", "while", "for",
    ];
    HEADERS.iter().find_map(|kw| keyword(s, kw))?;
    // The first `:` outside brackets that is not `:=` ends the header (strings are already `""`).
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) != Some(&b'=') => {
                return Some(s[i + 1..].trim_start());
            }
            _ => {}
        }
    }
    None
}

/// The top-level name of a dotted module name (`a . b` allowed, as Python allows it), if valid.
fn top_level(dotted: &str) -> Option<String> {
    let first = dotted.split('.').next()?.trim();
    if !is_ident(first) {
        return None;
    }
    if dotted.split('.').any(|p| !is_ident(p.trim())) {
        return None;
    }
    Some(first.to_string())
}

fn parse_statement(stmt: &str, line: usize, out: &mut Vec<Import>) {
    let s = stmt.trim_start();
    if let Some(rest) = keyword(s, "import") {
        for part in rest.split(',') {
            let part = part.trim().trim_start_matches('(').trim_end_matches(')');
            let module = part.split_once(" as ").map_or(part, |(m, _)| m);
            let module: String = module.split_whitespace().collect();
            if let Some(m) = top_level(&module) {
                out.push(Import { module: m, line });
            }
        }
    } else if let Some(rest) = keyword(s, "from") {
        let rest = rest.trim_start();
        if rest.starts_with('.') {
            return; // relative
        }
        // `from a . b import x`: the module ends at the `import` keyword.
        let Some(pos) = rest.find(" import") else {
            return;
        };
        let module: String = rest[..pos].split_whitespace().collect();
        if let Some(m) = top_level(&module) {
            out.push(Import { module: m, line });
        }
    } else if let Some(body) = after_header(s) {
        parse_statement(body, line, out);
    }
}

/// The absolute imports of one Python source file, in source order (see the module docs).
pub fn scan_imports(source: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for (line, stmt) in statements(source) {
        parse_statement(&stmt, line, &mut out);
    }
    out
}

/// The module name a file provides in its directory (`x` for `x.py`, `x.cpython-311-…so`).
fn module_of_file(name: &str) -> Option<&str> {
    if let Some(stem) = name.strip_suffix(".py") {
        return Some(stem);
    }
    if name.ends_with(".so") || name.ends_with(".pyd") {
        return name.split('.').next();
    }
    None
}

/// Whether a path component hides everything below it.
fn skipped_dir(component: &str) -> bool {
    component.starts_with('.')
        || matches!(
            component,
            "site-packages" | "dist-packages" | "node_modules" | "__pycache__"
        )
}

/// The third-party top-level modules imported by the Python files of a build context.
///
/// `files` lists every file of the context as (path relative to the context root, `/`-separated;
/// its content when it is a `.py` file to scan, else `None`). Paths of files without content
/// still make names local. Content that is not UTF-8 is read lossily. The result is sorted by
/// module name.
pub fn third_party_imports<'a, I>(files: I) -> Vec<ThirdPartyImport>
where
    I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    let mut files: Vec<(String, Option<&[u8]>)> = files
        .into_iter()
        .map(|(p, c)| {
            let p = p.trim_start_matches("./").trim_start_matches('/');
            (p.to_string(), c)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    // Virtual environments: directories holding pyvenv.cfg.
    let venvs: BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _)| p.strip_suffix("pyvenv.cfg"))
        .filter(|d| d.len() > 1 && d.ends_with('/'))
        .map(|d| d.trim_end_matches('/').to_string())
        .collect();
    let kept = |p: &str| -> bool {
        let comps: Vec<&str> = p.split('/').collect();
        if comps[..comps.len() - 1].iter().any(|c| skipped_dir(c)) {
            return false;
        }
        !venvs.iter().any(|v| p.starts_with(&format!("{v}/")))
    };

    // Directory -> names it provides; directories that are packages.
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut packages: BTreeSet<String> = BTreeSet::new();
    for (p, _) in files.iter().filter(|(p, _)| kept(p)) {
        let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
        let Some((file, dirs)) = comps.split_last() else {
            continue;
        };
        for (i, d) in dirs.iter().enumerate() {
            children
                .entry(dirs[..i].join("/"))
                .or_default()
                .insert(d.to_string());
        }
        let dir = dirs.join("/");
        if *file == "__init__.py" {
            packages.insert(dir.clone());
        }
        if let Some(m) = module_of_file(file) {
            children.entry(dir).or_default().insert(m.to_string());
        }
    }
    let provides = |dir: &str, name: &str| children.get(dir).is_some_and(|s| s.contains(name));

    let mut found: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for (p, content) in &files {
        let Some(content) = content else { continue };
        if !p.ends_with(".py") || !kept(p) {
            continue;
        }
        let text = String::from_utf8_lossy(content);
        let dirs: Vec<&str> = p.split('/').collect();
        let dirs = &dirs[..dirs.len() - 1];
        for imp in scan_imports(&text) {
            let m = imp.module.as_str();
            if is_stdlib(m) {
                continue;
            }
            let local = provides("", m)
                || provides("src", m)
                || (1..=dirs.len()).any(|n| {
                    let d = dirs[..n].join("/");
                    !packages.contains(&d) && provides(&d, m)
                });
            if local {
                continue;
            }
            let e = found
                .entry(imp.module.clone())
                .or_insert_with(|| (format!("{p}:{}", imp.line), BTreeSet::new()));
            e.1.insert(p.clone());
        }
    }
    found
        .into_iter()
        .map(|(module, (first_seen, files))| ThirdPartyImport {
            module,
            first_seen,
            files: files.len(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mods(src: &str) -> Vec<(String, usize)> {
        scan_imports(src)
            .into_iter()
            .map(|i| (i.module, i.line))
            .collect()
    }

    fn m(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
    }

    #[test]
    fn import_forms() {
        let src = "import os\nimport a.b.c, b as bee, c.d as dee\nfrom x.y import z\n\
                   from q import (r,\n    s as t,\n)\nfrom . import u\nfrom .v import w\nfrom .. import k\n\
                   from   spaced . mod   import  thing\nimport\\\n  cont\n";
        assert_eq!(
            mods(src),
            m(&[
                ("os", 1),
                ("a", 2),
                ("b", 2),
                ("c", 2),
                ("x", 3),
                ("q", 4),
                ("spaced", 10),
                ("cont", 11),
            ])
        );
    }

    #[test]
    fn strings_and_comments_are_not_code() {
        let src = "# import commented\nx = 'import quoted'\ns = \"\"\"\nimport in_docstring\nfrom doc import x\n\"\"\"\n\
                   t = r'''it's \\''' import no'''\nu = \"esc \\\" import still_string\"\nimport real  # import trailing\n\
                   v = f\"{'import'}\"\nb'x'; import after_semicolon\n";
        assert_eq!(mods(src), m(&[("real", 9), ("after_semicolon", 11)]));
    }

    #[test]
    fn indented_and_one_line_compound_statements() {
        let src = "def f():\n    import inner\ntry: import ujson as json\nexcept ImportError: import json\n\
                   if TYPE_CHECKING: from typing_extensions import Self\nimportlib = 1\nimport_thing()\nfromage = 2\n\
                   x = {'a': 1}; import dictafter\n";
        assert_eq!(
            mods(src),
            m(&[
                ("inner", 2),
                ("ujson", 3),
                ("json", 4),
                ("typing_extensions", 5),
                ("dictafter", 9),
            ])
        );
    }

    #[test]
    fn brackets_join_lines_and_keep_line_numbers() {
        let src = "call(\n  'x',\n)\nfrom pkg import (\n  a,  # comment ( with paren\n  b,\n)\nimport last\n";
        assert_eq!(mods(src), m(&[("pkg", 4), ("last", 8)]));
        let src = "s = '''a\nb\nc'''\nimport after_triple\n";
        assert_eq!(mods(src), m(&[("after_triple", 4)]));
    }

    #[test]
    fn stdlib_names() {
        for s in [
            "os",
            "sys",
            "asyncio",
            "tomllib",
            "__future__",
            "distutils",
            "imp",
            "asynchat",
            "zoneinfo",
            "graphlib",
            "annotationlib",
            "binhex",
            "_thread",
        ] {
            assert!(is_stdlib(s), "{s}");
        }
        for s in ["fastapi", "requests", "yaml", "setuptools", "pip", "Os"] {
            assert!(!is_stdlib(s), "{s}");
        }
        assert!(stdlib::STDLIB.windows(2).all(|w| w[0] < w[1]), "sorted");
    }

    fn run(files: &[(&str, &str)]) -> Vec<String> {
        third_party_imports(
            files
                .iter()
                .map(|(p, c)| (*p, (!c.is_empty()).then_some(c.as_bytes()))),
        )
        .into_iter()
        .map(|i| i.module)
        .collect()
    }

    #[test]
    fn local_modules_are_not_third_party() {
        let files = [
            (
                "main.py",
                "import helpers, app.routes, mypkg, native, fastapi\nimport uvicorn",
            ),
            ("helpers.py", "import os"),
            ("app/__init__.py", ""),
            (
                "app/routes.py",
                "from app import helpers\nimport pydantic\n",
            ),
            ("src/mypkg/__init__.py", "import yaml"),
            ("native.cpython-311-x86_64-linux-gnu.so", ""),
            ("README.md", ""),
        ];
        assert_eq!(run(&files), ["fastapi", "pydantic", "uvicorn", "yaml"]);
    }

    #[test]
    fn sibling_scripts_but_not_package_siblings() {
        let files = [
            // A script directory (not a package): its siblings are importable.
            ("scripts/run.py", "import tools\nimport celery\n"),
            ("scripts/tools.py", ""),
            // A Django project package: proj/celery.py does not hide the real celery.
            ("proj/__init__.py", ""),
            ("proj/celery.py", "from celery import Celery\n"),
            ("proj/settings.py", "import celery, environ\n"),
            // backend/ is not a package: run from there, `app` is importable.
            (
                "backend/app/main.py",
                "from app.core import x\nimport redis\n",
            ),
            ("backend/app/core.py", ""),
        ];
        assert_eq!(run(&files), ["celery", "environ", "redis"]);
    }

    #[test]
    fn environments_and_hidden_directories_are_ignored() {
        let files = [
            ("app.py", "import flask\n"),
            (
                ".venv/lib/python3.11/site-packages/flask/__init__.py",
                "import werkzeug\n",
            ),
            ("env/pyvenv.cfg", ""),
            (
                "env/lib/python3.11/site-packages/click/__init__.py",
                "import colorama\n",
            ),
            ("env/bin/tool.py", "import notme\n"),
            ("vendor/site-packages/x.py", "import neither\n"),
            ("node_modules/thing/build.py", "import gyp\n"),
        ];
        assert_eq!(run(&files), ["flask"]);
        // `flask` in a venv does not make `flask` local.
        let found = third_party_imports([
            ("app.py", Some(b"import flask".as_slice())),
            ("x/app2.py", Some(b"\n\nimport flask".as_slice())),
            (".venv/lib/python3.11/site-packages/flask/__init__.py", None),
        ]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].first_seen, "app.py:1");
        assert_eq!(found[0].files, 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn scan_never_panics(s in "\\PC{0,200}") {
            let _ = scan_imports(&s);
        }

        #[test]
        fn generated_imports_are_found(
            names in proptest::collection::vec("m[a-z0-9_]{0,6}", 1..5),
            noise in "[ a-z=0-9#'\"()\\[\\]{}:;\\\\]{0,30}",
            quoted in "[ a-z=0-9#\"()\\[\\]{}:;]{0,30}",
        ) {
            // Each name on its own line after a comment and strings holding brackets, `#`, `;`.
            let mut src = format!(
                "x = 1  # {noise}\ny = '{quoted}' ; z = ('''{quoted}\n{quoted}''',\n)\n"
            );
            for n in &names {
                src.push_str(&format!("import {n}.sub as alias\n"));
            }
            let got: Vec<String> = scan_imports(&src).into_iter().map(|i| i.module).collect();
            proptest::prop_assert_eq!(got, names);
        }
    }
}
