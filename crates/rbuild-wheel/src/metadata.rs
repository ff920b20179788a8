//! `WHEEL` and `METADATA` (RFC 822 style headers, read as Python's `email` compat32 policy does)
//! and `entry_points.txt` (INI, read as `configparser.ConfigParser(delimiters="=")` does).

/// Returns the first header named `name` (case-insensitive) in the header block of `text`.
///
/// Like compat32: the value has leading spaces and tabs removed, continuation lines (starting
/// with whitespace) are appended, and trailing `\r`/`\n` are removed.
pub(crate) fn header(text: &str, name: &str) -> Option<String> {
    let mut current: Option<(String, String)> = None;
    let mut found: Option<String> = None;
    let finish = |cur: Option<(String, String)>, found: &mut Option<String>| {
        if let Some((k, v)) = cur
            && found.is_none()
            && k.eq_ignore_ascii_case(name)
        {
            *found = Some(v.trim_end_matches(['\r', '\n']).to_string());
        }
    };
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.as_mut() {
                v.push_str(line);
            }
            continue;
        }
        finish(current.take(), &mut found);
        match line.split_once(':') {
            Some((k, v)) => {
                current = Some((k.to_string(), v.trim_start_matches([' ', '\t']).to_string()))
            }
            None => break,
        }
    }
    finish(current, &mut found);
    found
}

/// Which launcher kind an entry point asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptSection {
    Console,
    Gui,
}

/// A `console_scripts` / `gui_scripts` entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPoint {
    pub name: String,
    pub module: String,
    pub attr: String,
    pub section: ScriptSection,
}

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Matches `(?P<module>[\w.]+)\s*(:\s*(?P<attrs>[\w.]+))\s*(?P<extras>\[.*\])?\s*$` (installer's
/// `_ENTRYPOINT_REGEX`, used with `re.match`).
fn parse_value(value: &str) -> Option<(String, String)> {
    let take = |s: &str| -> usize {
        s.char_indices()
            .find(|(_, c)| !(is_word(*c) || *c == '.'))
            .map_or(s.len(), |(i, _)| i)
    };
    let n = take(value);
    if n == 0 {
        return None;
    }
    let module = &value[..n];
    let rest = value[n..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let n = take(rest);
    if n == 0 {
        return None;
    }
    let attr = &rest[..n];
    let rest = rest[n..].trim_start();
    if !rest.is_empty() {
        // `\[.*\]` (no newline inside) then only whitespace.
        let inner = rest.strip_prefix('[')?;
        let close = inner.rfind(']')?;
        if inner[..close].contains('\n') || !inner[close + 1..].trim().is_empty() {
            return None;
        }
    }
    Some((module.to_string(), attr.to_string()))
}

/// Parses the script entry points of `entry_points.txt`, in file order (DEFAULT keys first, as
/// `ConfigParser.items` returns them).
pub(crate) fn parse_entry_points(text: &str) -> Result<Vec<EntryPoint>, String> {
    type Section = (String, Vec<(String, Vec<String>)>);
    let mut defaults: Vec<(String, Vec<String>)> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    // None: no section yet; Some(None): DEFAULT; Some(Some(i)): sections[i]
    let mut cur: Option<Option<usize>> = None;
    let mut cur_opt: Option<usize> = None;
    let mut indent_level = 0usize;
    for (lineno, line) in text.split('\n').enumerate() {
        let lineno = lineno + 1;
        let value = line.trim();
        if value.starts_with('#') || value.starts_with(';') {
            continue;
        }
        if value.is_empty() {
            // empty_lines_in_values: a blank line inside a value is kept.
            if let (Some(c), Some(o)) = (cur, cur_opt) {
                let opts = match c {
                    None => &mut defaults,
                    Some(i) => &mut sections[i].1,
                };
                opts[o].1.push(String::new());
            }
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let (Some(c), Some(o)) = (cur, cur_opt)
            && indent > indent_level
        {
            let opts = match c {
                None => &mut defaults,
                Some(i) => &mut sections[i].1,
            };
            opts[o].1.push(value.to_string());
            continue;
        }
        indent_level = indent;
        if let Some(inner) = value.strip_prefix('[')
            && let Some(end) = inner.rfind(']')
            && end > 0
        {
            let header = &inner[..end];
            if header == "DEFAULT" {
                cur = Some(None);
            } else {
                if sections.iter().any(|(n, _)| n == header) {
                    return Err(format!("line {lineno}: section [{header}] appears twice"));
                }
                sections.push((header.to_string(), Vec::new()));
                cur = Some(Some(sections.len() - 1));
            }
            cur_opt = None;
            continue;
        }
        let Some(c) = cur else {
            return Err(format!("line {lineno}: text before the first [section]"));
        };
        let Some((key, val)) = value.split_once('=') else {
            return Err(format!("line {lineno}: expected `name = value`"));
        };
        let key = key.trim_end();
        if key.is_empty() {
            return Err(format!("line {lineno}: empty name"));
        }
        let opts = match c {
            None => &mut defaults,
            Some(i) => &mut sections[i].1,
        };
        if opts.iter().any(|(k, _)| k == key) {
            return Err(format!(
                "line {lineno}: {key:?} appears twice in its section"
            ));
        }
        opts.push((key.to_string(), vec![val.trim().to_string()]));
        cur_opt = Some(opts.len() - 1);
    }

    let mut out = Vec::new();
    for (section_name, opts) in &sections {
        let section = match section_name.as_str() {
            "console_scripts" => ScriptSection::Console,
            "gui_scripts" => ScriptSection::Gui,
            _ => continue,
        };
        // ConfigParser.items(): defaults first (overridden in place), then the section's own keys.
        let mut merged: Vec<(&String, &Vec<String>)> = Vec::new();
        for (k, v) in &defaults {
            let v = opts.iter().find(|(k2, _)| k2 == k).map_or(v, |(_, v2)| v2);
            merged.push((k, v));
        }
        for (k, v) in opts {
            if !defaults.iter().any(|(k2, _)| k2 == k) {
                merged.push((k, v));
            }
        }
        for (name, lines) in merged {
            let value = lines.join("\n");
            let value = value.trim_end();
            if value.contains('%') {
                return Err(format!(
                    "[{section_name}] {name}: '%' is not supported in an entry point"
                ));
            }
            let (module, attr) = parse_value(value).ok_or_else(|| {
                format!("[{section_name}] {name} = {value:?} is not `module:attribute`")
            })?;
            out.push(EntryPoint {
                name: name.clone(),
                module,
                attr,
                section,
            });
        }
    }
    Ok(out)
}

/// The posix launcher installer's `Script.generate(interpreter, "posix")` writes.
pub(crate) fn launcher(ep: &EntryPoint, interpreter: &str) -> Vec<u8> {
    let import_name = ep.attr.split('.').next().unwrap_or(&ep.attr);
    let mut out = build_shebang(interpreter);
    out.push(b'\n');
    out.extend_from_slice(
        format!(
            "# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {import_name}\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit({func}())\n",
            module = ep.module,
            func = ep.attr,
        )
        .as_bytes(),
    );
    out
}

/// installer's `_build_shebang(executable, forlauncher=False)`.
pub(crate) fn build_shebang(interpreter: &str) -> Vec<u8> {
    let simple = !interpreter.contains(' ') && interpreter.len() + 3 <= 127;
    if simple {
        return format!("#!{interpreter}").into_bytes();
    }
    format!(
        "#!/bin/sh\n'''exec' {} \"$0\" \"$@\"\n' '''",
        shlex_quote(interpreter)
    )
    .into_bytes()
}

/// Python's `shlex.quote`.
fn shlex_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if s.chars().all(safe) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let wheel = "Wheel-Version: 1.0\r\nGenerator: x\nroot-is-purelib:   true\nTag: a\n\nRoot-Is-Purelib: false\n";
        assert_eq!(header(wheel, "Root-Is-Purelib").as_deref(), Some("true"));
        assert_eq!(header(wheel, "wheel-version").as_deref(), Some("1.0"));
        assert_eq!(header(wheel, "Missing"), None);
        let folded = "Name: foo\nSummary: a\n  b\nName: bar\n";
        assert_eq!(header(folded, "Name").as_deref(), Some("foo"));
        assert_eq!(header(folded, "Summary").as_deref(), Some("a\n  b"));
    }

    #[test]
    fn entry_points() {
        let text = "[console_scripts]\npyflakes = pyflakes.api:main\nx=a.b : C.d [extra1, e2]  \n\n[gui_scripts]\ng = m:f\n[other]\ny = not valid\n";
        let eps = parse_entry_points(text).unwrap();
        assert_eq!(
            eps,
            vec![
                EntryPoint {
                    name: "pyflakes".into(),
                    module: "pyflakes.api".into(),
                    attr: "main".into(),
                    section: ScriptSection::Console
                },
                EntryPoint {
                    name: "x".into(),
                    module: "a.b".into(),
                    attr: "C.d".into(),
                    section: ScriptSection::Console
                },
                EntryPoint {
                    name: "g".into(),
                    module: "m".into(),
                    attr: "f".into(),
                    section: ScriptSection::Gui
                },
            ]
        );
        assert!(parse_entry_points("[console_scripts]\nx = not a valid value\n").is_err());
        assert!(parse_entry_points("x = a:b\n").is_err());
        assert!(parse_entry_points("[console_scripts]\nx = a:b\nx = c:d\n").is_err());
        // continuation lines join the value with a newline; installer's regex then needs the
        // module on the first line.
        let eps = parse_entry_points("[console_scripts]\nx = a:b\n   [extra]\n").unwrap();
        assert_eq!((eps[0].module.as_str(), eps[0].attr.as_str()), ("a", "b"));
        assert!(parse_entry_points("[console_scripts]\nx =\n   a:b\n").is_err());
        // comments and case preserved
        let eps = parse_entry_points("; c\n[console_scripts]\n# c\nMyTool = M:f\n").unwrap();
        assert_eq!(eps[0].name, "MyTool");
    }

    #[test]
    fn launchers() {
        let ep = EntryPoint {
            name: "t".into(),
            module: "pkg.cli".into(),
            attr: "App.main".into(),
            section: ScriptSection::Console,
        };
        let text = String::from_utf8(launcher(&ep, "/usr/bin/python3.11")).unwrap();
        assert_eq!(
            text,
            "#!/usr/bin/python3.11\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom pkg.cli import App\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit(App.main())\n"
        );
        assert_eq!(
            build_shebang("/opt/my python/bin/python"),
            b"#!/bin/sh\n'''exec' '/opt/my python/bin/python' \"$0\" \"$@\"\n' '''".to_vec()
        );
        let long = format!("/{}", "p".repeat(130));
        assert!(build_shebang(&long).starts_with(b"#!/bin/sh\n"));
    }
}
